open("/tmp/pubmine-hostile-remote-code-ran", "w").close()
