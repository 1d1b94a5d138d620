"""lengen: will a transformer work on inputs longer than those it was trained on, and why?"""

__version__ = "0.1.0"
