"""cementsim: physics simulator of bone-cement (PMMA) injection into trabecular bone.

Two-phase (cement displacing marrow) Darcy flow in a rigid porous medium, solved with a
vertex-centred control-volume finite-element (box) method on tetrahedra. See README.md and
DESIGN notes for the physics, the numerics and the verification.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cementsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
