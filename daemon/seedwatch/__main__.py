from seedwatch.cli import main

raise SystemExit(main())
