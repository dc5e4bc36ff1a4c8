package api

import (
	"encoding/json"
	"errors"

	"github.com/labstack/echo/v4"
)

// indentJSONSerializer writes indented JSON, so answers read well in a
// terminal (the API is meant to be curled by people too). Requests are
// decoded by decodeJSON, never by echo's Bind.
type indentJSONSerializer struct{}

func (indentJSONSerializer) Serialize(c echo.Context, i any, _ string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetIndent("", "  ")
	return enc.Encode(i)
}

func (indentJSONSerializer) Deserialize(echo.Context, any) error {
	return errors.New("api: use decodeJSON to read request bodies")
}
