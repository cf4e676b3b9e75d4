"""A ParaView script next to the fields: `paraview --script=open_in_paraview.py`
(or `pvbatch open_in_paraview.py` to render cement.png without the GUI)."""

from __future__ import annotations

from pathlib import Path

SCRIPT = '''"""Open this run in ParaView: paraview --script=open_in_paraview.py

The bone is shown translucent, the cement (saturation >= 0.5 at every vertex of a cell) as a
solid coloured by its viscosity, seen from anterior like an AP fluoroscopy, at the last output
time; the animation runs over the output times. With pvbatch or pvpython instead of the GUI
it writes cement.png next to this file (headless: xvfb-run -a pvbatch open_in_paraview.py).
Written for ParaView 5.10 or later.
"""
import os

from paraview.simple import *  # noqa: F403

here = os.path.dirname(os.path.abspath(__file__))
fields = Xdmf3ReaderT(FileName=[os.path.join(here, "fields.xdmf")])  # noqa: F405
fields.UpdatePipelineInformation()
times = list(fields.TimestepValues or [0.0])
scene = GetAnimationScene()  # noqa: F405
scene.UpdateAnimationUsingDataTimeSteps()
scene.AnimationTime = times[-1]
view = GetActiveViewOrCreate("RenderView")  # noqa: F405
view.ViewTime = times[-1]
bone = Show(fields, view)  # noqa: F405
ColorBy(bone, None)  # noqa: F405
bone.DiffuseColor = [0.85, 0.82, 0.74]
bone.Opacity = 0.15
cement = Threshold(Input=fields)  # noqa: F405
cement.Scalars = ["POINTS", "saturation"]
cement.LowerThreshold, cement.UpperThreshold = 0.5, 1.0
cement.UpdatePipeline(times[-1])
shown = Show(cement, view)  # noqa: F405
ColorBy(shown, ("CELLS", "cement_viscosity"))  # noqa: F405
shown.RescaleTransferFunctionToDataRange(False, True)
shown.SetScalarBarVisibility(view, True)
view.CameraFocalPoint = [0.0, 0.0, 0.0]
view.CameraPosition = [1.0, 0.0, 0.0]  # from anterior (+x), cranial (+z) up
view.CameraViewUp = [0.0, 0.0, 1.0]
view.ResetCamera()
Render()  # noqa: F405
SaveScreenshot(os.path.join(here, "cement.png"), view, ImageResolution=[800, 600])  # noqa: F405
'''


def write_paraview_script(run_dir: Path) -> Path:
    """open_in_paraview.py in the run directory."""
    path = run_dir / "open_in_paraview.py"
    path.write_text(SCRIPT)
    return path
