"""Query model: parsing of the native JSON query and formatting of results."""
