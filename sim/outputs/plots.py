"""PNG plots of a run: pressure and leakage against injected volume, saturation mid-planes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mpi4py import MPI

from sim.outputs.probe import Probe
from sim.outputs.timeseries import TimeSeries

if TYPE_CHECKING:
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


def plot_midplanes(problem: InjectionProblem, path: Path, resolution: int = 120) -> None:
    """Cement saturation on the three coordinate planes through the first needle tip.

    Collective: every rank must call it; rank 0 writes the figure.
    """
    comm = problem.comm
    x = problem.mesh.geometry.x
    lo, hi = np.empty(3), np.empty(3)
    comm.Allreduce(x.min(axis=0), lo, op=MPI.MIN)
    comm.Allreduce(x.max(axis=0), hi, op=MPI.MAX)
    tip = problem.needles[0].tip
    planes = (("x", 1, 2), ("y", 0, 2), ("z", 0, 1))
    images = []
    for normal, i, j in planes:
        u = np.linspace(lo[i], hi[i], resolution)
        v = np.linspace(lo[j], hi[j], resolution)
        uu, vv = np.meshgrid(u, v)
        pts = np.tile(tip, (uu.size, 1)).astype(float)
        pts[:, i], pts[:, j] = uu.ravel(), vv.ravel()
        values = Probe(problem.mesh, pts)(problem.S).reshape(uu.shape)
        images.append((normal, i, j, (u[0], u[-1], v[0], v[-1]), values))
    if comm.rank != 0:
        return
    names = "xyz"
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    for ax, (normal, i, j, extent, values) in zip(axes, images, strict=True):
        mm = tuple(e * 1e3 for e in extent)
        im = ax.imshow(values, origin="lower", extent=mm, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"{normal} = {tip[names.index(normal)] * 1e3:.1f} mm")
        ax.set_xlabel(f"{names[i]} (mm)")
        ax.set_ylabel(f"{names[j]} (mm)")
        ax.set_aspect("equal")
    fig.colorbar(im, ax=axes, label="cement saturation S", shrink=0.85)
    fig.suptitle(f"t = {problem.t:.1f} s, injected {problem.injected() / ML:.2f} mL")
    fig.savefig(path, dpi=120)
    plt.close(fig)
