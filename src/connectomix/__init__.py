"""connectomix: from serial-section EM images to an analysed connectome."""
__version__ = "0.1.0"
