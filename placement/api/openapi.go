package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"
)

// openAPIYAML is the API's OpenAPI 3 document; it is written by hand (so
// it can say why, not only what) and tested against the routes and types.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPIDocument returns the OpenAPI document as JSON.
func OpenAPIDocument() ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("parsing openapi.yaml: %w", err)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding openapi document: %w", err)
	}
	return out, nil
}

func (a *API) openAPI(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, a.openAPIJSON)
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath turns echo's /servers/:server into OpenAPI's /servers/{server}.
func openAPIPath(p string) string { return echoParam.ReplaceAllString(p, "{$1}") }
