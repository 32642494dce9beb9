from schoolmon.cli import main

raise SystemExit(main())
