# config module
