"""The base of errors in the user's input that show only once the mesh exists (a mesh file
without a tag the scenario names, a CT volume that misses the bone, a surface that is not
closed) or once a run claims its results folder (locked by another run, not a folder, not
writable). Raised on every MPI rank; the command line reports them as invalid input (exit 2)."""


class InputError(Exception):
    """Bad input found while building or reading the mesh or mapping data onto it."""


class MeshError(InputError, RuntimeError):
    """A mesh could not be built or read, or lacks a tag the scenario names."""


class RunFolderError(InputError):
    """A run's results folder cannot be written: another run holds its lock, or the path is
    not a place where a results folder can be created or replaced."""


class RunInterrupted(Exception):
    """A signal ended a run after it wrote its checkpoint; `cementsim run --resume` goes on
    from it. Raised on every MPI rank."""


class RunFailed(RuntimeError):
    """A run cannot go on, for a reason its message explains to the user: a limit of
    `numerics` reached, the time step below its minimum, a pressure system no solver solves.
    Raised on every MPI rank; the command line prints the message without a traceback."""
