from feeder.cli.main import main

raise SystemExit(main())
