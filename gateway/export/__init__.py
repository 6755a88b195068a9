"""Population health bulk export: what consent lets out, pseudonymised and minimised."""
