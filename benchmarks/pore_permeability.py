"""Pore-scale permeability of an idealised trabecular block against published values.

The block is synthetic: a cubic lattice of straight bone rods (sim.ct.synthetic.rod_lattice,
Gibson's open-cell rod model of low-density trabecular bone), rod centres 0.8 mm apart
(a trabecular spacing of human vertebral cancellous bone, from memory: Tb.Sp about
0.6-1.0 mm), vertical rods thicker than the horizontal ones (radius ratio 0.7), their
radius set by BV/TV. Real trabecular bone has plates, a spread of thickness and spacing,
and lost connections; this lattice has none of that, so the comparison is of orders of
magnitude and trends, not a validation.

The lattice is mirror-symmetric about its rod planes and the planes half-way between them,
so an eighth of its unit cell with `mirror` ends and `slip` sides gives the permeability of
the infinite lattice (tests/verification/test_pore_flow.py checks the equivalence on a
sphere array); x and y are equivalent, so only x and z are solved.

Published (abstracts read; see also sim/ct/density.py):
- Nauman, Fong & Keaveny 1999, Ann Biomed Eng 27:517: intertrabecular permeability
  2.68e-11 to 2.00e-8 m² over human vertebral body, human proximal femur and bovine tibia,
  falling with volume fraction; longitudinal / transverse 2.05 in the vertebral body.
- Baroud et al. 2004, J Biomech 37:189: lumbar vertebral cores 4.45 ± 1.72e-8 m²
  superior-inferior, 3.44 ± 1.26e-8 m² antero-posterior (ratio 1.29).
The repo's CT default (Kozeny-Carman, calibrated to Baroud's SI mean at porosity 0.95) is
printed beside them.

Run: .venv/bin/python benchmarks/pore_permeability.py [--voxel 40] [--bvtv 0.08 0.12 ...]
(mpirun -n 2 works). Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from mpi4py import MPI

from sim.ct.density import CTMapping
from sim.ct.pore_flow import permeability
from sim.ct.synthetic import rod_lattice

SPACING = 0.8e-3  # rod centre distance (m)
HORIZONTAL_RATIO = 0.7  # radius of horizontal rods / vertical rods
NAUMAN_RANGE = (2.68e-11, 2.00e-8)  # m², all sites (Nauman et al. 1999)
BAROUD_SI, BAROUD_AP = 4.45e-8, 3.44e-8  # m², lumbar vertebrae (Baroud et al. 2004)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel", type=float, default=40.0, help="voxel edge (um), 40")
    parser.add_argument(
        "--bvtv", type=float, nargs="+", default=[0.08, 0.12, 0.16, 0.20], help="BV/TV values"
    )
    args = parser.parse_args()
    voxel = args.voxel * 1e-6
    cells = round(SPACING / voxel)  # voxels per lattice period
    if cells % 2:
        raise SystemExit(f"the rod spacing {SPACING * 1e3} mm must be an even number of voxels")
    kozeny = CTMapping()
    root = MPI.COMM_WORLD.rank == 0
    if root:
        print(
            f"rod lattice, spacing {SPACING * 1e3:.1f} mm, voxel {args.voxel:g} um "
            f"({cells // 2}^3 voxels: an eighth of the unit cell), horizontal/vertical "
            f"radius {HORIZONTAL_RATIO}"
        )
        print(" BV/TV   k_x = k_y (m^2)   k_z (m^2)   k_z/k_x   Kozeny-Carman default (m^2)   s")
    for target in args.bvtv:
        pore = rod_lattice((cells // 2,) * 3, cells, target, HORIZONTAL_RATIO)
        start = time.perf_counter()
        result = permeability(pore, voxel, directions=(0, 2), ends="mirror")
        seconds = time.perf_counter() - start
        k = result.permeability
        if root:
            kc = float(kozeny.axial_permeability(result.porosity))
            print(
                f" {result.bone_volume_fraction:5.3f}   {k[0, 0]:.3e}       {k[2, 2]:.3e}"
                f"   {k[2, 2] / k[0, 0]:6.2f}    {kc:.3e}                   {seconds:5.1f}"
            )
    if root:
        print(
            f"published: Nauman 1999 {NAUMAN_RANGE[0]:.2e}-{NAUMAN_RANGE[1]:.2e} m^2 (all "
            f"sites), vertebral longitudinal/transverse 2.05; Baroud 2004 lumbar SI "
            f"{BAROUD_SI:.2e}, AP {BAROUD_AP:.2e} m^2 (SI/AP {BAROUD_SI / BAROUD_AP:.2f})"
        )


if __name__ == "__main__":
    main()
