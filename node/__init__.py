"""PulsarDB storage node: the engine and the node-side services around it."""
