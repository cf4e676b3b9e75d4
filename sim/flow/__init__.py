"""Discretisation of the flow: P1 pressure, box fluxes, implicit upwind saturation transport."""
