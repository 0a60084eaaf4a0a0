"""Environment and operator files (policy, hotlines, CDNs); every problem names file:line."""
