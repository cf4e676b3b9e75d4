"""Physics as components of one small interface (sim.components.base), ordered by the stepper
(sim.stepper): flow (pressure, rates, viscosity), saturation transport, curing, leak
accounting. A new physics is a new component: its module, its scenario section and one line
in `optional_components`.
"""
