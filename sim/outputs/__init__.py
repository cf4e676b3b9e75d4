"""What a run writes: time series, fields for ParaView, summary, plots, provenance."""
