"""Meta-package marker: installing ``omniq`` pulls in omniq-core and the embedded backends."""
