"""Views of a finished run for people: the text timeline and the HTML timeline."""
