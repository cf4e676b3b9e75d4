"""What several test folders share: the SLURM test cluster's scripts, process helpers."""
