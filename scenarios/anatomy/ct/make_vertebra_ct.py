"""Write vertebra_L1_ct.h5, the example CT of `vertebroplasty_L1_ct.yaml`.

Run: .venv/bin/python scenarios/anatomy/ct/make_vertebra_ct.py
The volume is `sim.ct.synthetic.osteoporotic_vertebra()` (L1 dimensions, 1 mm voxels, HU):
a porosity gradient from the posterior to the anterior wall and a lytic lesion. Mapped back
with the default calibration it gives that porosity field exactly at the voxel centres.
"""

from pathlib import Path

from sim.ct.synthetic import osteoporotic_vertebra, write_ct_h5

if __name__ == "__main__":
    path = write_ct_h5(Path(__file__).with_name("vertebra_L1_ct.h5"), osteoporotic_vertebra())
    print(f"written: {path}")
