"""crisisbot core: domain, storage, playbook and rendering. Knows no chat platform."""
