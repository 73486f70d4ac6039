import { useState } from "react";
import { get } from "./api/client";
import { ErrorBox, Loading } from "./components/Status";
import { InfoContext } from "./lib/modelInfo";
import { Link, useLocation } from "./lib/router";
import { useAsync } from "./lib/useAsync";
import { CircuitsPage } from "./pages/CircuitsPage";
import { DebuggerPage } from "./pages/DebuggerPage";
import { DiscoverPage } from "./pages/DiscoverPage";
import { GraphPage } from "./pages/GraphPage";
import { LensPage } from "./pages/LensPage";
import { MarkovPage } from "./pages/MarkovPage";
import { NodePage } from "./pages/NodePage";

const PAGES = [
  { path: "/", label: "Debugger" },
  { path: "/graph", label: "Graph" },
  { path: "/discover", label: "Discover" },
  { path: "/lens", label: "Lens" },
  { path: "/circuits", label: "Circuits" },
  { path: "/markov", label: "Markov" },
];

export function App() {
  const loc = useLocation();
  const [attempt, setAttempt] = useState(0);
  const info = useAsync(`info${attempt}`, (signal) => get("/api/model", {}, {}, signal));
  const section = loc.path.startsWith("/node/") ? "/node" : loc.path;
  return (
    <div className="app">
      <header className="top">
        <span className="brand">lenscope</span>
        <nav aria-label="pages">
          {PAGES.map((p) => (
            <Link key={p.path} to={p.path} className={section === p.path ? "active" : undefined} aria-current={section === p.path ? "page" : undefined}>
              {p.label}
            </Link>
          ))}
        </nav>
        {info.data && (
          <span className="model" title={`fingerprint ${info.data.fingerprint}`}>
            {info.data.name} · {info.data.config.n_layers as number} layers · {(info.data.n_params / 1e6).toFixed(1)}M params
            {info.data.saes.length ? ` · ${info.data.saes.length} SAE` : ""}
            {info.data.records.available ? " · records" : ""}
          </span>
        )}
      </header>
      <main>
        {info.loading && <Loading what="connecting to the server" />}
        {info.error && <ErrorBox error={info.error} onRetry={() => setAttempt((a) => a + 1)} />}
        {info.data && (
          <InfoContext.Provider value={info.data}>
            <Page path={loc.path} params={loc.params} />
          </InfoContext.Provider>
        )}
      </main>
    </div>
  );
}

function Page({ path, params }: { path: string; params: URLSearchParams }) {
  if (path === "/" || path === "/debugger") return <DebuggerPage params={params} />;
  if (path.startsWith("/node/")) return <NodePage id={decodeURIComponent(path.slice(6))} params={params} />;
  if (path === "/graph") return <GraphPage params={params} />;
  if (path === "/discover") return <DiscoverPage params={params} />;
  if (path === "/lens") return <LensPage params={params} />;
  if (path === "/circuits") return <CircuitsPage params={params} />;
  if (path === "/markov") return <MarkovPage params={params} />;
  return (
    <p className="empty">
      No page at {path}. <Link to="/">Go to the debugger</Link>.
    </p>
  );
}
