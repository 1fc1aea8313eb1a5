"""Reproductions of the IPOT thesis figures (chapter 2): one module per figure, each with
``run(**params, output_dir) -> metrics``; :mod:`.problems` builds the shared problems."""
