"""Reading a WebUI payload: settings with A1111's defaults and checks, and the `alwayson_scripts` it carries."""
