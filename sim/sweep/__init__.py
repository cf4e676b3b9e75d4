"""Parameter sweeps: a sweep file expands into runs of `cementsim run --set ...`, executed by a
local pool, Dask (local or a cluster's scheduler), dask-jobqueue on SLURM/PBS, or a SLURM job
array; finished runs are kept and skipped on restart; the results are collected into one table.
Every point may be repeated on bone realisations, whose leak probabilities are reported.
"""
