"""``msc-france doctor``: what a user checks on a machine before a long job."""
