"""``python -m msc_france`` is the ``msc-france`` command (also under ``torchrun -m``)."""

from msc_france.cli import main

main()
