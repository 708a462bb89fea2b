from mnist_exp.checks import run_hydra_main
from mnist_exp.resume import rewrite_argv
from mnist_exp.train import main

if __name__ == "__main__":
    rewrite_argv()  # ckpt_path=...: carry on in that run's dir with its overrides
    run_hydra_main(main)
