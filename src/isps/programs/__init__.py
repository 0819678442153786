"""Programs: the catalogue of social protection schemes (federal and Punjab), and what stands on it."""
