package ollama_test

import (
	"net/http"
	"net/url"

	"github.com/ollama/ollama/api"
)

type apiChatResponse = api.ChatResponse

// apiClient is Ollama's own client, for what the adapter does not expose.
func apiClient(host string) (*api.Client, error) {
	u, err := url.Parse("http://" + host)
	if err != nil {
		return nil, err
	}
	return api.NewClient(u, http.DefaultClient), nil
}
