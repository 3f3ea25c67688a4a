"""Training and evaluation of Crystal Explorer's models (`python -m train`, `python -m train.evaluate`)."""
