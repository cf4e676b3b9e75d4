"""A cube of bone to test output operators on (shared by the outputs unit tests)."""

from __future__ import annotations

from mpi4py import MPI

from sim.geometry import build_mesh
from sim.problem import InjectionProblem
from sim.scenario import validate_scenario


def cube_of_bone(edge: float, cells: int, porosity: float) -> InjectionProblem:
    """An initialised problem on the cube [0, edge]^3 (m) of structured tetrahedra, `cells` per
    edge, uniform `porosity`, an outlet on the face x = edge and a target `whole`."""
    sc = validate_scenario(
        {
            "name": "cube",
            "geometry": {
                "kind": "column",
                "length": edge,
                "width": edge,
                "cells_along": cells,
                "cells_across": cells,
            },
            "bone": {"porosity": porosity, "permeability": 1e-9},
            "cement": {"rheology": {"model": "newtonian", "viscosity": 100.0}},
            "marrow": {"viscosity": 0.05},
            "injection": {"needles": [{"inner_diameter": 0.002, "rate": 1e-8, "volume": 1e-7}]},
            "leak_routes": {"outlet": {"kind": "outlet", "boundary": "outlet"}},
            "targets": {"whole": {"regions": ["bone"]}},
            "output": {"fields": False, "plots": False, "fluoroscopy": False},
        }
    )
    pb = InjectionProblem(sc, build_mesh(sc, MPI.COMM_WORLD))
    pb.initialise()
    return pb
