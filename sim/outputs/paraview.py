"""A ParaView script next to the fields: `paraview --script=open_in_paraview.py`
(or `pvpython open_in_paraview.py` to render an image without the GUI)."""

from __future__ import annotations

from pathlib import Path

SCRIPT = '''"""Open this run in ParaView: paraview --script=open_in_paraview.py

The bone is shown as a translucent outline, the cement (saturation >= 0.5) as a solid,
coloured by its viscosity; the animation runs over the output times.
With pvpython instead of the GUI it writes cement.png next to this file.
"""
import os

from paraview.simple import *  # noqa: F403

here = os.path.dirname(os.path.abspath(__file__))
fields = Xdmf3ReaderT(FileName=[os.path.join(here, "fields.xdmf")])  # noqa: F405
fields.UpdatePipelineInformation()
view = GetActiveViewOrCreate("RenderView")  # noqa: F405
bone = Show(fields, view)  # noqa: F405
bone.SetRepresentationType("Outline")
cement = Threshold(Input=fields)  # noqa: F405
cement.Scalars = ["POINTS", "saturation"]
cement.LowerThreshold, cement.UpperThreshold = 0.5, 1.0
shown = Show(cement, view)  # noqa: F405
ColorBy(shown, ("CELLS", "cement_viscosity"))  # noqa: F405
shown.SetScalarBarVisibility(view, True)
scene = GetAnimationScene()  # noqa: F405
scene.UpdateAnimationUsingDataTimeSteps()
scene.AnimationTime = fields.TimestepValues[-1]
view.ResetCamera()
Render()  # noqa: F405
SaveScreenshot(os.path.join(here, "cement.png"), view)  # noqa: F405
'''


def write_paraview_script(run_dir: Path) -> Path:
    """open_in_paraview.py in the run directory."""
    path = run_dir / "open_in_paraview.py"
    path.write_text(SCRIPT)
    return path
