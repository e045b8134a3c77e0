#include "admission/admission.h"

#include <set>

namespace inferd {

// A presented key longer than this names no tenant (ours are 46 bytes).
constexpr size_t kMaxKeyBytes = 512;

StatusOr<std::unique_ptr<Admission>> Admission::Create(AdmissionConfig config) {
  std::unique_ptr<Admission> a(new Admission());
  a->auth_required_ = config.auth_required;
  a->default_tenant_.name = kDefaultTenant;
  a->default_tenant_.admin = !config.auth_required;
  std::set<std::string> names;
  std::set<KeyDigest> digests;
  for (TenantConfig& t : config.tenants) {
    if (t.name == kDefaultTenant) {
      return InvalidArgumentError("tenant name 'default' is reserved for requests without a key");
    }
    if (!names.insert(t.name).second) {
      return InvalidArgumentError("tenant '" + t.name + "' is defined twice");
    }
    if (t.key_digests.empty()) {
      return InvalidArgumentError("tenant '" + t.name + "' has no api_key_sha256");
    }
    auto tenant = std::make_unique<Tenant>();
    tenant->name = t.name;
    tenant->admin = t.admin;
    for (const KeyDigest& d : t.key_digests) {
      if (!digests.insert(d).second) {
        return InvalidArgumentError("api_key_sha256 " + DigestHex(d) +
                                    " is listed twice (each key names one tenant)");
      }
      a->keys_.push_back({d, tenant.get()});
    }
    a->tenants_.push_back(std::move(tenant));
  }
  if (config.auth_required && a->keys_.empty()) {
    return InvalidArgumentError(
        "auth.required is true but no [[tenants]] entry has an api_key_sha256: no request could "
        "be admitted");
  }
  return a;
}

StatusOr<const Tenant*> Admission::Authenticate(std::string_view credential) const {
  if (credential.empty()) {
    if (auth_required_) {
      return UnauthenticatedError(
          "missing API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'");
    }
    return &default_tenant_;
  }
  const Tenant* found = nullptr;
  if (credential.size() <= kMaxKeyBytes) {
    const KeyDigest digest = Sha256(credential);
    // Every stored digest is compared, whichever matches.
    for (const Key& k : keys_) {
      if (DigestsEqual(k.digest, digest)) found = k.tenant;
    }
  }
  if (found == nullptr) return UnauthenticatedError("unknown API key");
  return found;
}

}  // namespace inferd
