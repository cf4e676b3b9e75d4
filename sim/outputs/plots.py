"""PNG plots of a run: pressure and leakage against injected volume, saturation mid-planes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mpi4py import MPI

from sim import measurements as measure
from sim.outputs.imaging import VIEWS, detector_for, section
from sim.outputs.timeseries import TimeSeries

if TYPE_CHECKING:
    from sim.components.base import OutputField
    from sim.problem import InjectionProblem

ML = 1e-6  # m³ per mL


def plot_against_volume(
    series: TimeSeries, prefix: str, scale: float, ylabel: str, title: str, path: Path
) -> None:
    """Columns ``prefix.<name>`` (divided by `scale`) against the injected volume (mL)."""
    volume = series.column("injected_volume_m3") / ML
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for name, values in series.columns_starting(prefix).items():
        ax.plot(volume, values / scale, label=name)
    ax.set_xlabel("injected volume (mL)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_against_time(
    series: TimeSeries,
    columns: dict[str, str],
    scale: float,
    ylabel: str,
    title: str,
    path: Path,
    log_scale: bool = False,
) -> None:
    """Named columns (divided by `scale`) against time (s)."""
    t = series.column("time_s")
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for label, column in columns.items():
        ax.plot(t, series.column(column) / scale, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(columns) > 1:
        ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_series(series: TimeSeries, folder: Path) -> None:
    """The standard plots of a run's time series (rank 0)."""
    plot_against_volume(
        series,
        "tip_pressure_pa",
        1e3,
        "tip pressure (kPa)",
        "Pressure at the needle tip",
        folder / "pressure_vs_volume.png",
    )
    plot_against_volume(
        series,
        "leaked_volume_m3",
        ML,
        "leaked cement (mL)",
        "Leakage per route",
        folder / "leakage_vs_volume.png",
    )
    pressures = {
        f"tip {n}": f"tip_pressure_pa.{n}" for n in series.columns_starting("tip_pressure_pa")
    }
    pressures |= {
        f"syringe {n}": f"syringe_pressure_pa.{n}"
        for n in series.columns_starting("syringe_pressure_pa")
    }
    plot_against_time(
        series,
        pressures,
        1e3,
        "pressure (kPa)",
        "Syringe and tip pressure",
        folder / "pressure_vs_time.png",
    )
    plot_against_time(
        series,
        {
            "in the syringe (at 1/s)": "syringe_viscosity_pa_s",
            "in the bone, lowest": "cement_viscosity_min_pa_s",
            "in the bone, highest": "cement_viscosity_max_pa_s",
        },
        1.0,
        "apparent viscosity (Pa s)",
        "Cement viscosity",
        folder / "viscosity_vs_time.png",
        log_scale=True,
    )


@dataclass(frozen=True)
class RunPlots:
    """What a component draws its figures with at the end of a run: the problem, its time
    series and the run folder (files are named relative to it)."""

    problem: InjectionProblem
    series: TimeSeries
    folder: Path

    def against_time(
        self, columns: dict[str, str], scale: float, ylabel: str, title: str, file: str
    ) -> None:
        """Time-series columns (label: column) against time (rank 0 draws; see
        plot_against_time)."""
        if self.problem.comm.rank == 0:
            plot_against_time(self.series, columns, scale, ylabel, title, self.folder / file)

    def sections(self, field: OutputField, label: str, file: str) -> None:
        """Sections of a vertex field through the needle tip, coloured over the field's
        range (collective; see plot_midplanes)."""
        plot_midplanes(self.problem, self.folder / file, field=field, limits=None, label=label)


def plot_midplanes(
    problem: InjectionProblem,
    path: Path,
    resolution: int = 160,
    field: OutputField | None = None,
    limits: tuple[float, float] | None = (0.0, 1.0),
    label: str = "cement saturation S",
) -> None:
    """CT-like sections of a vertex field (default the cement saturation) through the first
    needle tip: coronal (y-z, at the tip's x), sagittal (x-z) and axial (y-x); `limits` of
    the colour scale (None: the field's range). Collective; rank 0 writes."""
    comm = problem.comm
    x = problem.disc.mesh.geometry.x
    lo, hi = np.empty(3), np.empty(3)
    comm.Allreduce(x.min(axis=0), lo, op=MPI.MIN)
    comm.Allreduce(x.max(axis=0), hi, op=MPI.MAX)
    tip = problem.needles[0].tip
    n = problem.disc.n_cells
    dofs = problem.disc.cell_dofs[:n]
    cells_x = problem.disc.V.tabulate_dof_coordinates()[dofs]
    function = problem.state.S if field is None else field.function
    values = function.x.array[dofs]
    if limits is None:
        limits = (
            comm.allreduce(float(values.min(initial=np.inf)), op=MPI.MIN),
            comm.allreduce(float(values.max(initial=-np.inf)), op=MPI.MAX),
        )
    pixel = float((hi - lo).max()) / resolution
    images = []
    for view, title in (("ap", "coronal"), ("lateral", "sagittal"), ("axial", "axial")):
        beam, ia, ib = VIEWS[view]
        detector = detector_for(view, lo, hi, pixel, margin=0.0)
        image = section(cells_x, values, detector, float(tip[beam]), comm)
        images.append((title, beam, ia, ib, detector, image))
    if comm.rank != 0:
        return
    names = "xyz"
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    for ax, (title, beam, ia, ib, d, image) in zip(axes, images, strict=True):
        extent = (*(1e3 * r for r in d.a_range), *(1e3 * r for r in d.b_range))
        im = ax.imshow(
            image, origin="lower", extent=extent, vmin=limits[0], vmax=limits[1], cmap="viridis"
        )
        ax.set_title(f"{title}, {names[beam]} = {tip[beam] * 1e3:.1f} mm")
        ax.set_xlabel(f"{names[ia]} (mm)")
        ax.set_ylabel(f"{names[ib]} (mm)")
    fig.colorbar(im, ax=axes, label=label, shrink=0.85)
    injected = measure.injected(problem)
    fig.suptitle(f"t = {problem.state.t:.1f} s, injected {injected / ML:.2f} mL")
    fig.savefig(path, dpi=120)
    plt.close(fig)
