//! Decoding of `apt`: packages (list or per-release map), sources and proxies.

use super::*;

impl Decoder<'_> {
    pub(super) fn apt(&mut self, node: &Node, path: &str) -> AptConfig {
        let mut apt = AptConfig::default();
        let Some(entries) = self.map(node, path, &["packages", "sources", "proxies"]) else {
            return apt;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "packages" => apt.packages = self.packages(v, &child),
                "sources" => {
                    if let Some(items) = self.seq(v, &child) {
                        for (i, item) in items.iter().enumerate() {
                            let p = format!("{child}[{i}]");
                            if let Some(s) = self.apt_source(item, &p) {
                                apt.sources.push(s);
                            }
                        }
                    }
                }
                "proxies" => {
                    if let Some(items) = self.seq(v, &child) {
                        for (i, item) in items.iter().enumerate() {
                            let p = format!("{child}[{i}]");
                            if let Some(proxy) = self.apt_proxy(item, &p) {
                                apt.proxies.push(proxy);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        apt
    }

    fn packages(&mut self, node: &Node, path: &str) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => self.null_refused(node, path, "array or object"),
            NodeKind::Seq(items) => {
                let mut list = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(item, &format!("{path}[default][{i}]")) {
                        list.push(s);
                    }
                }
                out.insert("default".to_string(), list);
            }
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    let release_path = format!("{path}[{}]", k.name);
                    self.positions.insert(format!("{release_path}#key"), k.pos);
                    self.record(&release_path, v);
                    let list = match &v.kind {
                        NodeKind::Seq(items) => {
                            let mut list = Vec::new();
                            for (i, item) in items.iter().enumerate() {
                                if let Some(s) = self.string(item, &format!("{release_path}[{i}]"))
                                {
                                    list.push(s);
                                }
                            }
                            list
                        }
                        NodeKind::Null => {
                            self.null_refused(v, &release_path, "array");
                            continue;
                        }
                        _ => {
                            self.wrong_type(v, &release_path, "[]string");
                            continue;
                        }
                    };
                    out.insert(k.name.clone(), list);
                }
            }
            _ => self.wrong_type(node, path, "config.AptPackages"),
        }
        out
    }

    fn apt_source(&mut self, node: &Node, path: &str) -> Option<AptSource> {
        let allowed = ["url", "distribution", "components", "signed-by"];
        let entries = self.map(node, path, &allowed)?;
        let mut s = AptSource::default();
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "url" => s.url = self.string(v, &child).unwrap_or_default(),
                "distribution" => s.distribution = self.string(v, &child).unwrap_or_default(),
                "components" => s.components = self.string_list(v, &child).unwrap_or_default(),
                "signed-by" => s.signed_by = self.string(v, &child).unwrap_or_default(),
                _ => {}
            }
        }
        Some(s)
    }

    fn apt_proxy(&mut self, node: &Node, path: &str) -> Option<AptProxy> {
        if matches!(node.kind, NodeKind::Null) {
            self.null_refused(node, path, "string or object");
            return None;
        }
        if let NodeKind::Str(s) = &node.kind {
            self.record(path, node);
            self.record(&join(path, "url"), node);
            return Some(AptProxy {
                url: s.clone(),
                source: None,
            });
        }
        let entries = self.map(node, path, &["url", "source"])?;
        let mut proxy = AptProxy::default();
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "url" => proxy.url = self.string(v, &child).unwrap_or_default(),
                "source" => proxy.source = self.string(v, &child),
                _ => {}
            }
        }
        Some(proxy)
    }
}
