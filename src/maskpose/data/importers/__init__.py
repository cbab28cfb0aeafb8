"""Importers of public datasets into the maskpose dataset folder (``docs/dataset-format.md``).

One function per dataset, each reading the dataset's release layout and writing one folder with
:class:`maskpose.data.folder.DatasetWriter`:

* :func:`import_h36m` — Human3.6M (multi-view, background-subtraction masks, H36M lens model removed);
* :func:`import_3dhp` — MPI-INF-3DHP training set (multi-view, FG minus chair masks) or test set
  (single view, ``split="test"``);
* :func:`import_tiktok` — TikTok dataset (single view, masks, no labels);
* :func:`import_mpii` — MPII Human Pose (single view, 2D labels, no masks).

Every problem with a source file raises :class:`DatasetImportError` (a ``ValueError``) naming the file.
:func:`load_h36m_calibration` and :func:`load_3dhp_calibration` read the two datasets' camera files.
"""
from .common import DatasetImportError
from .h36m import import_h36m, load_h36m_calibration
from .mpi3dhp import import_3dhp, import_3dhp_test, load_3dhp_calibration
from .mpii import import_mpii
from .tiktok import import_tiktok

__all__ = ["DatasetImportError", "import_h36m", "load_h36m_calibration", "import_3dhp", "import_3dhp_test",
           "load_3dhp_calibration", "import_tiktok", "import_mpii"]
