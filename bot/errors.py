"""Refusals: a request the core will not carry out, with the text that explains why."""


class Refusal(Exception):
    """Answered privately to the person who asked; nothing was changed.

    ``text`` names a macro in templates/<lang>/errors.j2, ``values`` are its arguments.
    """

    def __init__(self, text: str, **values):
        super().__init__(text)
        self.text = text
        self.values = values
