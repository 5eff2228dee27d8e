from gumei.cli import main

main()
