"""Tables and figures from tidy results."""
