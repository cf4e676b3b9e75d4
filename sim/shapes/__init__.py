"""Analytic shapes of the generated geometry kinds, without gmsh or DOLFINx: tag names,
point-in-bone tests, checks of dimensions, features and needles, lumbar level dimensions,
sacrum defaults and needle paths (SI units); the names of surface files.

The scenario schema (sim.scenario) validates with them and the gmsh builders (sim.geometry)
build from them; this package imports neither.
"""
