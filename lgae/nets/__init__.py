"""Networks shared by the methods: conv encoder/decoder stacks and their CPU kernels, MLPs,
InfoGAN's DCGAN-style generator and trunks."""
