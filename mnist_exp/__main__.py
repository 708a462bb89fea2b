from mnist_exp.cli import train

if __name__ == "__main__":
    train()  # ckpt_path=...: carry on in that run's dir with its overrides (mnist_exp/resume.py)
