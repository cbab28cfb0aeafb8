"""``python -m maskpose`` (also what ``torchrun -m maskpose train ...`` runs)."""
from .cli import app

if __name__ == "__main__":
    app(prog_name="maskpose")
