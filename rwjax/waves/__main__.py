"""`python -m rwjax.waves`: the command line of rwjax.waves.cli."""
from rwjax.errors import cli_main
from rwjax.waves.cli import main

if __name__ == '__main__':
  cli_main(main)
