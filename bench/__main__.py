"""python -m bench lossless DIR [options]   (see --help)"""
from .cli import main

main()
