"""Constitutive laws: pure functions of saturation, viscosity and cement age (no meshes)."""
