import os
import sys
from pathlib import Path

import torch

# tests import shared helpers from sibling test modules
sys.path.insert(0, str(Path(__file__).parent))

# Under pytest-xdist each worker gets one core: torch's default of one thread per core would
# oversubscribe a 2-core machine (measured 3x slower).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
