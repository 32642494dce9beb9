"""Protocol-faithful peers for devices that cannot run here (projectors, radios)."""
