package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// promClient asks a Prometheus-compatible HTTP API the same questions
// Grafana's Prometheus datasource asks: query, query_range and label values.
type promClient struct {
	base   string // e.g. http://127.0.0.1:9831/prometheus
	client *http.Client
}

func newPromClient(base string) *promClient {
	return &promClient{base: strings.TrimSuffix(base, "/"), client: &http.Client{Timeout: 10 * time.Second}}
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

func (c *promClient) get(ctx context.Context, path string, params url.Values) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s answered %d, not JSON: %.200s", path, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s answered %d: %s: %s", path, resp.StatusCode, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// points counts the non-NaN values a query answer holds (what a panel would
// draw) and returns its series' label sets.
func points(data json.RawMessage) (int, []map[string]string, error) {
	var qd queryData
	if err := json.Unmarshal(data, &qd); err != nil {
		return 0, nil, err
	}
	n := 0
	var series []map[string]string
	isValue := func(v []any) bool {
		if len(v) != 2 {
			return false
		}
		s, _ := v[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		return err == nil && !math.IsNaN(f)
	}
	switch qd.ResultType {
	case "vector":
		var vs []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal(qd.Result, &vs); err != nil {
			return 0, nil, err
		}
		for _, v := range vs {
			if isValue(v.Value) {
				n++
				series = append(series, v.Metric)
			}
		}
	case "matrix":
		var ms []struct {
			Metric map[string]string `json:"metric"`
			Values [][]any           `json:"values"`
		}
		if err := json.Unmarshal(qd.Result, &ms); err != nil {
			return 0, nil, err
		}
		for _, m := range ms {
			had := false
			for _, v := range m.Values {
				if isValue(v) {
					n++
					had = true
				}
			}
			if had {
				series = append(series, m.Metric)
			}
		}
	case "scalar":
		var v []any
		if err := json.Unmarshal(qd.Result, &v); err != nil {
			return 0, nil, err
		}
		if isValue(v) {
			n = 1
		}
	default:
		return 0, nil, fmt.Errorf("unexpected result type %q", qd.ResultType)
	}
	return n, series, nil
}

// instant runs an instant query at now.
func (c *promClient) instant(ctx context.Context, expr string) (int, []map[string]string, error) {
	data, err := c.get(ctx, "/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, nil, err
	}
	return points(data)
}

// rangeQuery runs a range query over the last window, as a time series
// panel does.
func (c *promClient) rangeQuery(ctx context.Context, expr string, window, step time.Duration) (int, error) {
	end := time.Now()
	data, err := c.get(ctx, "/api/v1/query_range", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(end.Add(-window).Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {strconv.Itoa(int(step.Seconds()))},
	})
	if err != nil {
		return 0, err
	}
	n, _, err := points(data)
	return n, err
}

// labelValues is what Grafana asks for label_values(selector, label).
func (c *promClient) labelValues(ctx context.Context, selector, label string) ([]string, error) {
	params := url.Values{
		"start": {strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)},
		"end":   {strconv.FormatInt(time.Now().Unix(), 10)},
	}
	if selector != "" {
		params.Set("match[]", selector)
	}
	data, err := c.get(ctx, "/api/v1/label/"+url.PathEscape(label)+"/values", params)
	if err != nil {
		return nil, err
	}
	var values []string
	if err := json.Unmarshal(data, &values); err != nil {
		return nil, err
	}
	return values, nil
}
