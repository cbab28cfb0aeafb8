"""maskpose: learn 3D human pose from foreground masks alone ("Mask as Supervision", ECCV 2024)."""
__version__ = "0.1.0"
