"""nst: fast neural style transfer (Johnson et al. 2016) with the Gatys et al. (2015) optimizer beside it."""

__version__ = "0.1.0"
