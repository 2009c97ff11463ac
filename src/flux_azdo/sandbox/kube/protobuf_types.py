"""Field numbers of the Kubernetes protobuf messages the fake server decodes, one string per message.

kubectl 1.32 sends built-in objects from its typed clients (`kubectl create namespace|secret|configmap|...`,
`kubectl auth can-i`, `kubectl auth whoami`) as protobuf, so the server needs the wire layout of those messages
and of everything they contain. The facts come from the `generated.proto` files of k8s.io/api (core, apps,
rbac, authorization, authentication, networking, coordination v1) and k8s.io/apimachinery (meta v1). Each entry
lists `number name type [r|m]`, where `r` marks a repeated field and `m` a map from string to the type. Special
types: time (metav1.Time), quantity, intstr, raw (RawExtension, FieldsV1) and duration.
"""

from __future__ import annotations

#: k8s.io/api core/v1 gives Container and EphemeralContainerCommon the same fields and numbers.
_CONTAINER_FIELDS = (
    "1 name string; 2 image string; 3 command string r; 4 args string r; 5 workingDir string; "
    "6 ports ContainerPort r; 19 envFrom EnvFromSource r; 7 env EnvVar r; "
    "8 resources ResourceRequirements; 23 resizePolicy ContainerResizePolicy r; 24 restartPolicy string; "
    "25 restartPolicyRules ContainerRestartRule r; 9 volumeMounts VolumeMount r; "
    "21 volumeDevices VolumeDevice r; 10 livenessProbe Probe; 11 readinessProbe Probe; "
    "22 startupProbe Probe; 12 lifecycle Lifecycle; 13 terminationMessagePath string; "
    "20 terminationMessagePolicy string; 14 imagePullPolicy string; 15 securityContext SecurityContext; "
    "16 stdin bool; 17 stdinOnce bool; 18 tty bool"
)

MESSAGES: dict[str, str] = {
    "SelfSubjectReview": "1 metadata ObjectMeta; 2 status SelfSubjectReviewStatus",
    "SelfSubjectReviewStatus": "1 userInfo UserInfo",
    "UserInfo": "1 username string; 2 uid string; 3 groups string r",
    "AWSElasticBlockStoreVolumeSource": "1 volumeID string; 2 fsType string; 3 partition int32; 4 readOnly bool",
    "Affinity": "1 nodeAffinity NodeAffinity; 2 podAffinity PodAffinity; 3 podAntiAffinity PodAntiAffinity",
    "AggregationRule": "1 clusterRoleSelectors LabelSelector r",
    "AppArmorProfile": "1 type string; 2 localhostProfile string",
    "AzureDiskVolumeSource": (
        "1 diskName string; 2 diskURI string; 3 cachingMode string; 4 fsType string; 5 readOnly bool; 6 kind string"
    ),
    "AzureFileVolumeSource": "1 secretName string; 2 shareName string; 3 readOnly bool",
    "CSIVolumeSource": (
        "1 driver string; 2 readOnly bool; 3 fsType string; 4 volumeAttributes string m; "
        "5 nodePublishSecretRef LocalObjectReference"
    ),
    "Capabilities": "1 add string r; 2 drop string r",
    "CephFSVolumeSource": (
        "1 monitors string r; 2 path string; 3 user string; 4 secretFile string; "
        "5 secretRef LocalObjectReference; 6 readOnly bool"
    ),
    "CinderVolumeSource": "1 volumeID string; 2 fsType string; 3 readOnly bool; 4 secretRef LocalObjectReference",
    "ClientIPConfig": "1 timeoutSeconds int32",
    "ClusterRole": "1 metadata ObjectMeta; 2 rules PolicyRule r; 3 aggregationRule AggregationRule",
    "ClusterRoleBinding": "1 metadata ObjectMeta; 2 subjects Subject r; 3 roleRef RoleRef",
    "ClusterTrustBundleProjection": (
        "1 name string; 2 signerName string; 3 labelSelector LabelSelector; 5 optional bool; 4 path string; "
        "6 user int64"
    ),
    "Condition": (
        "1 type string; 2 status string; 3 observedGeneration int64; 4 lastTransitionTime time; "
        "5 reason string; 6 message string"
    ),
    "ConfigMap": "1 metadata ObjectMeta; 4 immutable bool; 2 data string m; 3 binaryData bytes m",
    "ConfigMapEnvSource": "1 localObjectReference LocalObjectReference; 2 optional bool",
    "ConfigMapKeySelector": "1 localObjectReference LocalObjectReference; 2 key string; 3 optional bool",
    "ConfigMapProjection": "1 localObjectReference LocalObjectReference; 2 items KeyToPath r; 4 optional bool",
    "ConfigMapVolumeSource": (
        "1 localObjectReference LocalObjectReference; 2 items KeyToPath r; 3 defaultMode int32; "
        "4 optional bool; 5 defaultUser int64"
    ),
    "Container": _CONTAINER_FIELDS,
    "ContainerExtendedResourceRequest": "1 containerName string; 2 resourceName string; 3 requestName string",
    "ContainerPort": "1 name string; 2 hostPort int32; 3 containerPort int32; 4 protocol string; 5 hostIP string",
    "ContainerResizePolicy": "1 resourceName string; 2 restartPolicy string",
    "ContainerRestartRule": "1 action string; 2 exitCodes ContainerRestartRuleOnExitCodes",
    "ContainerRestartRuleOnExitCodes": "1 operator string; 2 values int32 r",
    "ContainerState": (
        "1 waiting ContainerStateWaiting; 2 running ContainerStateRunning; 3 terminated ContainerStateTerminated"
    ),
    "ContainerStateRunning": "1 startedAt time",
    "ContainerStateTerminated": (
        "1 exitCode int32; 2 signal int32; 3 reason string; 4 message string; 5 startedAt time; "
        "6 finishedAt time; 7 containerID string"
    ),
    "ContainerStateWaiting": "1 reason string; 2 message string",
    "ContainerStatus": (
        "1 name string; 2 state ContainerState; 3 lastState ContainerState; 4 ready bool; "
        "5 restartCount int32; 6 image string; 7 imageID string; 8 containerID string; 9 started bool; "
        "10 allocatedResources quantity m; 11 resources ResourceRequirements; "
        "12 volumeMounts VolumeMountStatus r; 13 user ContainerUser; "
        "14 allocatedResourcesStatus ResourceStatus r; 15 stopSignal string"
    ),
    "ContainerUser": "1 linux LinuxContainerUser",
    "DeleteOptions": (
        "1 gracePeriodSeconds int64; 2 preconditions Preconditions; 3 orphanDependents bool; "
        "4 propagationPolicy string; 5 dryRun string r; "
        "6 ignoreStoreReadErrorWithClusterBreakingPotential bool"
    ),
    "Deployment": "1 metadata ObjectMeta; 2 spec DeploymentSpec; 3 status DeploymentStatus",
    "DeploymentCondition": (
        "1 type string; 2 status string; 6 lastUpdateTime time; 7 lastTransitionTime time; 4 reason string; "
        "5 message string"
    ),
    "DeploymentSpec": (
        "1 replicas int32; 2 selector LabelSelector; 3 template PodTemplateSpec; "
        "4 strategy DeploymentStrategy; 5 minReadySeconds int32; 6 revisionHistoryLimit int32; 7 paused bool; "
        "9 progressDeadlineSeconds int32"
    ),
    "DeploymentStatus": (
        "1 observedGeneration int64; 2 replicas int32; 3 updatedReplicas int32; 7 readyReplicas int32; "
        "4 availableReplicas int32; 5 unavailableReplicas int32; 9 terminatingReplicas int32; "
        "6 conditions DeploymentCondition r; 8 collisionCount int32"
    ),
    "DeploymentStrategy": "1 type string; 2 rollingUpdate RollingUpdateDeployment",
    "DownwardAPIProjection": "1 items DownwardAPIVolumeFile r",
    "DownwardAPIVolumeFile": (
        "1 path string; 2 fieldRef ObjectFieldSelector; 3 resourceFieldRef ResourceFieldSelector; "
        "4 mode int32; 5 user int64"
    ),
    "DownwardAPIVolumeSource": "1 items DownwardAPIVolumeFile r; 2 defaultMode int32; 3 defaultUser int64",
    "EmptyDirVolumeSource": "1 medium string; 2 sizeLimit quantity; 3 mode int32",
    "EnvFromSource": "1 prefix string; 2 configMapRef ConfigMapEnvSource; 3 secretRef SecretEnvSource",
    "EnvVar": "1 name string; 2 value string; 3 valueFrom EnvVarSource",
    "EnvVarSource": (
        "1 fieldRef ObjectFieldSelector; 2 resourceFieldRef ResourceFieldSelector; "
        "3 configMapKeyRef ConfigMapKeySelector; 4 secretKeyRef SecretKeySelector; "
        "5 fileKeyRef FileKeySelector"
    ),
    "EphemeralContainer": "1 ephemeralContainerCommon EphemeralContainerCommon; 2 targetContainerName string",
    "EphemeralContainerCommon": _CONTAINER_FIELDS,
    "EphemeralVolumeSource": "1 volumeClaimTemplate PersistentVolumeClaimTemplate",
    "Event": (
        "1 metadata ObjectMeta; 2 involvedObject ObjectReference; 3 reason string; 4 message string; "
        "5 source EventSource; 6 firstTimestamp time; 7 lastTimestamp time; 8 count int32; 9 type string; "
        "10 eventTime time; 11 series EventSeries; 12 action string; 13 related ObjectReference; "
        "14 reportingComponent string; 15 reportingInstance string"
    ),
    "EventSeries": "1 count int32; 2 lastObservedTime time",
    "EventSource": "1 component string; 2 host string",
    "EvictionResponder": "1 name string; 2 priority int32",
    "ExecAction": "1 command string r",
    "FCVolumeSource": "1 targetWWNs string r; 2 lun int32; 3 fsType string; 4 readOnly bool; 5 wwids string r",
    "FieldSelectorAttributes": "1 rawSelector string; 2 requirements FieldSelectorRequirement r",
    "FieldSelectorRequirement": "1 key string; 2 operator string; 3 values string r",
    "FileKeySelector": "1 volumeName string; 2 path string; 3 key string; 4 optional bool",
    "FlexVolumeSource": (
        "1 driver string; 2 fsType string; 3 secretRef LocalObjectReference; 4 readOnly bool; 5 options string m"
    ),
    "FlockerVolumeSource": "1 datasetName string; 2 datasetUUID string",
    "GCEPersistentDiskVolumeSource": "1 pdName string; 2 fsType string; 3 partition int32; 4 readOnly bool",
    "GRPCAction": "1 port int32; 2 service string; 3 mode string",
    "GitRepoVolumeSource": "1 repository string; 2 revision string; 3 directory string",
    "GlusterfsVolumeSource": "1 endpoints string; 2 path string; 3 readOnly bool",
    "HTTPGetAction": (
        "1 path string; 2 port intstr; 3 host string; 4 scheme string; 5 httpHeaders HTTPHeader r; 6 protocol string"
    ),
    "HTTPHeader": "1 name string; 2 value string",
    "HostAlias": "1 ip string; 2 hostnames string r",
    "HostIP": "1 ip string",
    "HostPathVolumeSource": "1 path string; 2 type string",
    "IPBlock": "1 cidr string; 2 except string r",
    "ISCSIVolumeSource": (
        "1 targetPortal string; 2 iqn string; 3 lun int32; 4 iscsiInterface string; 5 fsType string; "
        "6 readOnly bool; 7 portals string r; 8 chapAuthDiscovery bool; 11 chapAuthSession bool; "
        "10 secretRef LocalObjectReference; 12 initiatorName string"
    ),
    "ImageVolumeSource": "1 reference string; 2 pullPolicy string",
    "ImageVolumeStatus": "1 imageRef string",
    "KeyToPath": "1 key string; 2 path string; 3 mode int32; 4 user int64",
    "LabelSelector": "1 matchLabels string m; 2 matchExpressions LabelSelectorRequirement r",
    "LabelSelectorAttributes": "1 rawSelector string; 2 requirements LabelSelectorRequirement r",
    "LabelSelectorRequirement": "1 key string; 2 operator string; 3 values string r",
    "Lease": "1 metadata ObjectMeta; 2 spec LeaseSpec",
    "LeaseSpec": (
        "1 holderIdentity string; 2 leaseDurationSeconds int32; 3 acquireTime time; 4 renewTime time; "
        "5 leaseTransitions int32; 6 strategy string; 7 preferredHolder string"
    ),
    "Lifecycle": "1 postStart LifecycleHandler; 2 preStop LifecycleHandler; 3 stopSignal string",
    "LifecycleHandler": "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 sleep SleepAction",
    "LinuxContainerUser": "1 uid int64; 2 gid int64; 3 supplementalGroups int64 r",
    "LoadBalancerIngress": "1 ip string; 2 hostname string; 3 ipMode string; 4 ports PortStatus r",
    "LoadBalancerStatus": "1 ingress LoadBalancerIngress r",
    "LocalObjectReference": "1 name string",
    "ManagedFieldsEntry": (
        "1 manager string; 2 operation string; 3 apiVersion string; 4 time time; 6 fieldsType string; "
        "7 fieldsV1 raw; 8 subresource string"
    ),
    "NFSVolumeSource": "1 server string; 2 path string; 3 readOnly bool",
    "Namespace": "1 metadata ObjectMeta; 2 spec NamespaceSpec; 3 status NamespaceStatus",
    "NamespaceCondition": (
        "1 type string; 2 status string; 4 lastTransitionTime time; 5 reason string; 6 message string"
    ),
    "NamespaceSpec": "1 finalizers string r",
    "NamespaceStatus": "1 phase string; 2 conditions NamespaceCondition r",
    "NetworkPolicy": "1 metadata ObjectMeta; 2 spec NetworkPolicySpec",
    "NetworkPolicyEgressRule": "1 ports NetworkPolicyPort r; 2 to NetworkPolicyPeer r",
    "NetworkPolicyIngressRule": "1 ports NetworkPolicyPort r; 2 from NetworkPolicyPeer r",
    "NetworkPolicyPeer": "1 podSelector LabelSelector; 2 namespaceSelector LabelSelector; 3 ipBlock IPBlock",
    "NetworkPolicyPort": "1 protocol string; 2 port intstr; 3 endPort int32",
    "NetworkPolicySpec": (
        "1 podSelector LabelSelector; 2 ingress NetworkPolicyIngressRule r; "
        "3 egress NetworkPolicyEgressRule r; 4 policyTypes string r"
    ),
    "NodeAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector; "
        "2 preferredDuringSchedulingIgnoredDuringExecution PreferredSchedulingTerm r"
    ),
    "NodeAllocatableMappedResources": "1 name string; 2 quantity quantity",
    "NodeAllocatableOverheadResources": "1 name string; 2 perPod quantity; 3 perContainer quantity",
    "NodeAllocatableResourceClaimStatus": (
        "1 resourceClaimName string; 2 containers string r; 4 mapping NodeAllocatableMappedResources r; "
        "5 overhead NodeAllocatableOverheadResources r"
    ),
    "NodeSelector": "1 nodeSelectorTerms NodeSelectorTerm r",
    "NodeSelectorRequirement": "1 key string; 2 operator string; 3 values string r",
    "NodeSelectorTerm": "1 matchExpressions NodeSelectorRequirement r; 2 matchFields NodeSelectorRequirement r",
    "NonResourceAttributes": "1 path string; 2 verb string",
    "NonResourceRule": "1 verbs string r; 2 nonResourceURLs string r",
    "ObjectFieldSelector": "1 apiVersion string; 2 fieldPath string",
    "ObjectMeta": (
        "1 name string; 2 generateName string; 3 namespace string; 4 selfLink string; 5 uid string; "
        "6 resourceVersion string; 7 generation int64; 8 creationTimestamp time; 9 deletionTimestamp time; "
        "10 deletionGracePeriodSeconds int64; 11 labels string m; 12 annotations string m; "
        "13 ownerReferences OwnerReference r; 14 finalizers string r; 17 managedFields ManagedFieldsEntry r"
    ),
    "ObjectReference": (
        "1 kind string; 2 namespace string; 3 name string; 4 uid string; 5 apiVersion string; "
        "6 resourceVersion string; 7 fieldPath string"
    ),
    "OwnerReference": (
        "5 apiVersion string; 1 kind string; 3 name string; 4 uid string; 6 controller bool; 7 blockOwnerDeletion bool"
    ),
    "PersistentVolumeClaimSpec": (
        "1 accessModes string r; 4 selector LabelSelector; 2 resources VolumeResourceRequirements; "
        "3 volumeName string; 5 storageClassName string; 6 volumeMode string; "
        "7 dataSource TypedLocalObjectReference; 8 dataSourceRef TypedObjectReference; "
        "9 volumeAttributesClassName string"
    ),
    "PersistentVolumeClaimTemplate": "1 metadata ObjectMeta; 2 spec PersistentVolumeClaimSpec",
    "PersistentVolumeClaimVolumeSource": "1 claimName string; 2 readOnly bool",
    "PhotonPersistentDiskVolumeSource": "1 pdID string; 2 fsType string",
    "Pod": "1 metadata ObjectMeta; 2 spec PodSpec; 3 status PodStatus",
    "PodAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution PodAffinityTerm r; "
        "2 preferredDuringSchedulingIgnoredDuringExecution WeightedPodAffinityTerm r"
    ),
    "PodAffinityTerm": (
        "1 labelSelector LabelSelector; 2 namespaces string r; 3 topologyKey string; "
        "4 namespaceSelector LabelSelector; 5 matchLabelKeys string r; 6 mismatchLabelKeys string r"
    ),
    "PodAntiAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution PodAffinityTerm r; "
        "2 preferredDuringSchedulingIgnoredDuringExecution WeightedPodAffinityTerm r"
    ),
    "PodCertificateProjection": (
        "1 signerName string; 2 keyType string; 3 maxExpirationSeconds int32; 4 credentialBundlePath string; "
        "5 keyPath string; 6 certificateChainPath string; 7 userAnnotations string m; 8 user int64"
    ),
    "PodCondition": (
        "1 type string; 7 observedGeneration int64; 2 status string; 3 lastProbeTime time; "
        "4 lastTransitionTime time; 5 reason string; 6 message string"
    ),
    "PodDNSConfig": "1 nameservers string r; 2 searches string r; 3 options PodDNSConfigOption r",
    "PodDNSConfigOption": "1 name string; 2 value string",
    "PodExtendedResourceClaimStatus": (
        "1 requestMappings ContainerExtendedResourceRequest r; 2 resourceClaimName string"
    ),
    "PodIP": "1 ip string",
    "PodOS": "1 name string",
    "PodReadinessGate": "1 conditionType string",
    "PodResourceClaim": "1 name string; 3 resourceClaimName string; 4 resourceClaimTemplateName string",
    "PodResourceClaimStatus": "1 name string; 2 resourceClaimName string",
    "PodSchedulingGate": "1 name string",
    "PodSchedulingGroup": "1 podGroupName string",
    "PodSecurityContext": (
        "1 seLinuxOptions SELinuxOptions; 8 windowsOptions WindowsSecurityContextOptions; 2 runAsUser int64; "
        "6 runAsGroup int64; 3 runAsNonRoot bool; 4 supplementalGroups int64 r; "
        "12 supplementalGroupsPolicy string; 5 fsGroup int64; 7 sysctls Sysctl r; "
        "9 fsGroupChangePolicy string; 10 seccompProfile SeccompProfile; 11 appArmorProfile AppArmorProfile; "
        "13 seLinuxChangePolicy string"
    ),
    "PodSpec": (
        "1 volumes Volume r; 20 initContainers Container r; 2 containers Container r; "
        "34 ephemeralContainers EphemeralContainer r; 3 restartPolicy string; "
        "4 terminationGracePeriodSeconds int64; 5 activeDeadlineSeconds int64; 6 dnsPolicy string; "
        "7 nodeSelector string m; 8 serviceAccountName string; 9 serviceAccount string; "
        "21 automountServiceAccountToken bool; 10 nodeName string; 11 hostNetwork bool; 12 hostPID bool; "
        "13 hostIPC bool; 27 shareProcessNamespace bool; 14 securityContext PodSecurityContext; "
        "15 imagePullSecrets LocalObjectReference r; 16 hostname string; 17 subdomain string; "
        "18 affinity Affinity; 19 schedulerName string; 22 tolerations Toleration r; "
        "23 hostAliases HostAlias r; 24 priorityClassName string; 25 priority int32; "
        "26 dnsConfig PodDNSConfig; 28 readinessGates PodReadinessGate r; 29 runtimeClassName string; "
        "30 enableServiceLinks bool; 31 preemptionPolicy string; 32 overhead quantity m; "
        "33 topologySpreadConstraints TopologySpreadConstraint r; 35 setHostnameAsFQDN bool; 36 os PodOS; "
        "37 hostUsers bool; 38 schedulingGates PodSchedulingGate r; 39 resourceClaims PodResourceClaim r; "
        "40 resources ResourceRequirements; 41 hostnameOverride string; 43 schedulingGroup PodSchedulingGroup; "
        "44 evictionResponders EvictionResponder r"
    ),
    "PodStatus": (
        "17 observedGeneration int64; 1 phase string; 2 conditions PodCondition r; 3 message string; "
        "4 reason string; 11 nominatedNodeName string; 5 hostIP string; 16 hostIPs HostIP r; 6 podIP string; "
        "12 podIPs PodIP r; 7 startTime time; 10 initContainerStatuses ContainerStatus r; "
        "8 containerStatuses ContainerStatus r; 9 qosClass string; "
        "13 ephemeralContainerStatuses ContainerStatus r; 14 resize string; "
        "15 resourceClaimStatuses PodResourceClaimStatus r; "
        "18 extendedResourceClaimStatus PodExtendedResourceClaimStatus; 19 allocatedResources quantity m; "
        "20 resources ResourceRequirements; "
        "21 nodeAllocatableResourceClaimStatuses NodeAllocatableResourceClaimStatus r; "
        "22 volumeHealth PodVolumeHealth r"
    ),
    "PodTemplateSpec": "1 metadata ObjectMeta; 2 spec PodSpec",
    "PodVolumeHealth": "1 name string; 2 healthConditions VolumeHealthCondition r; 3 lastTransitionTime time",
    "PolicyRule": (
        "1 verbs string r; 2 apiGroups string r; 3 resources string r; 4 resourceNames string r; "
        "5 nonResourceURLs string r"
    ),
    "PortStatus": "1 port int32; 2 protocol string; 3 error string",
    "PortworxVolumeSource": "1 volumeID string; 2 fsType string; 3 readOnly bool",
    "Preconditions": "1 uid string; 2 resourceVersion string",
    "PreferredSchedulingTerm": "1 weight int32; 2 preference NodeSelectorTerm",
    "Probe": (
        "1 handler ProbeHandler; 2 initialDelaySeconds int32; 3 timeoutSeconds int32; 4 periodSeconds int32; "
        "5 successThreshold int32; 6 failureThreshold int32; 7 terminationGracePeriodSeconds int64"
    ),
    "ProbeHandler": "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 grpc GRPCAction",
    "ProjectedVolumeSource": "1 sources VolumeProjection r; 2 defaultMode int32; 3 defaultUser int64",
    "QuobyteVolumeSource": (
        "1 registry string; 2 volume string; 3 readOnly bool; 4 user string; 5 group string; 6 tenant string"
    ),
    "RBDVolumeSource": (
        "1 monitors string r; 2 image string; 3 fsType string; 4 pool string; 5 user string; 6 keyring string; "
        "7 secretRef LocalObjectReference; 8 readOnly bool"
    ),
    "ReplicaSet": "1 metadata ObjectMeta; 2 spec ReplicaSetSpec; 3 status ReplicaSetStatus",
    "ReplicaSetCondition": (
        "1 type string; 2 status string; 3 lastTransitionTime time; 4 reason string; 5 message string"
    ),
    "ReplicaSetSpec": "1 replicas int32; 4 minReadySeconds int32; 2 selector LabelSelector; 3 template PodTemplateSpec",
    "ReplicaSetStatus": (
        "1 replicas int32; 2 fullyLabeledReplicas int32; 4 readyReplicas int32; 5 availableReplicas int32; "
        "7 terminatingReplicas int32; 3 observedGeneration int64; 6 conditions ReplicaSetCondition r"
    ),
    "ResourceAttributes": (
        "1 namespace string; 2 verb string; 3 group string; 4 version string; 5 resource string; "
        "6 subresource string; 7 name string; 8 fieldSelector FieldSelectorAttributes; "
        "9 labelSelector LabelSelectorAttributes"
    ),
    "ResourceClaim": "1 name string; 2 request string",
    "ResourceFieldSelector": "1 containerName string; 2 resource string; 3 divisor quantity",
    "ResourceHealth": "1 resourceID string; 2 health string; 6 message string",
    "ResourceQuota": "1 metadata ObjectMeta; 2 spec ResourceQuotaSpec; 3 status ResourceQuotaStatus",
    "ResourceQuotaSpec": "1 hard quantity m; 2 scopes string r; 3 scopeSelector ScopeSelector",
    "ResourceQuotaStatus": "1 hard quantity m; 2 used quantity m",
    "ResourceRequirements": "1 limits quantity m; 2 requests quantity m; 3 claims ResourceClaim r",
    "ResourceRule": "1 verbs string r; 2 apiGroups string r; 3 resources string r; 4 resourceNames string r",
    "ResourceStatus": "1 name string; 2 resources ResourceHealth r",
    "Role": "1 metadata ObjectMeta; 2 rules PolicyRule r",
    "RoleBinding": "1 metadata ObjectMeta; 2 subjects Subject r; 3 roleRef RoleRef",
    "RoleRef": "1 apiGroup string; 2 kind string; 3 name string",
    "RollingUpdateDeployment": "1 maxUnavailable intstr; 2 maxSurge intstr",
    "SELinuxOptions": "1 user string; 2 role string; 3 type string; 4 level string",
    "ScaleIOVolumeSource": (
        "1 gateway string; 2 system string; 3 secretRef LocalObjectReference; 4 sslEnabled bool; "
        "5 protectionDomain string; 6 storagePool string; 7 storageMode string; 8 volumeName string; "
        "9 fsType string; 10 readOnly bool"
    ),
    "ScopeSelector": "1 matchExpressions ScopedResourceSelectorRequirement r",
    "ScopedResourceSelectorRequirement": "1 scopeName string; 2 operator string; 3 values string r",
    "SeccompProfile": "1 type string; 2 localhostProfile string",
    "Secret": "1 metadata ObjectMeta; 5 immutable bool; 2 data bytes m; 4 stringData string m; 3 type string",
    "SecretEnvSource": "1 localObjectReference LocalObjectReference; 2 optional bool",
    "SecretKeySelector": "1 localObjectReference LocalObjectReference; 2 key string; 3 optional bool",
    "SecretProjection": "1 localObjectReference LocalObjectReference; 2 items KeyToPath r; 4 optional bool",
    "SecretVolumeSource": (
        "1 secretName string; 2 items KeyToPath r; 3 defaultMode int32; 4 optional bool; 5 defaultUser int64"
    ),
    "SecurityContext": (
        "1 capabilities Capabilities; 2 privileged bool; 3 seLinuxOptions SELinuxOptions; "
        "10 windowsOptions WindowsSecurityContextOptions; 4 runAsUser int64; 8 runAsGroup int64; "
        "5 runAsNonRoot bool; 6 readOnlyRootFilesystem bool; 7 allowPrivilegeEscalation bool; "
        "9 procMount string; 11 seccompProfile SeccompProfile; 12 appArmorProfile AppArmorProfile"
    ),
    "SelfSubjectAccessReview": (
        "1 metadata ObjectMeta; 2 spec SelfSubjectAccessReviewSpec; 3 status SubjectAccessReviewStatus"
    ),
    "SelfSubjectAccessReviewSpec": (
        "1 resourceAttributes ResourceAttributes; 2 nonResourceAttributes NonResourceAttributes"
    ),
    "SelfSubjectRulesReview": (
        "1 metadata ObjectMeta; 2 spec SelfSubjectRulesReviewSpec; 3 status SubjectRulesReviewStatus"
    ),
    "SelfSubjectRulesReviewSpec": "1 namespace string",
    "Service": "1 metadata ObjectMeta; 2 spec ServiceSpec; 3 status ServiceStatus",
    "ServiceAccount": (
        "1 metadata ObjectMeta; 2 secrets ObjectReference r; 3 imagePullSecrets LocalObjectReference r; "
        "4 automountServiceAccountToken bool"
    ),
    "ServiceAccountTokenProjection": "1 audience string; 2 expirationSeconds int64; 3 path string; 4 user int64",
    "ServicePort": (
        "1 name string; 2 protocol string; 6 appProtocol string; 3 port int32; 4 targetPort intstr; 5 nodePort int32"
    ),
    "ServiceSpec": (
        "1 ports ServicePort r; 2 selector string m; 3 clusterIP string; 18 clusterIPs string r; "
        "4 type string; 5 externalIPs string r; 7 sessionAffinity string; 8 loadBalancerIP string; "
        "9 loadBalancerSourceRanges string r; 10 externalName string; 11 externalTrafficPolicy string; "
        "12 healthCheckNodePort int32; 13 publishNotReadyAddresses bool; "
        "14 sessionAffinityConfig SessionAffinityConfig; 19 ipFamilies string r; 17 ipFamilyPolicy string; "
        "20 allocateLoadBalancerNodePorts bool; 21 loadBalancerClass string; 22 internalTrafficPolicy string; "
        "23 trafficDistribution string"
    ),
    "ServiceStatus": "1 loadBalancer LoadBalancerStatus; 2 conditions Condition r",
    "SessionAffinityConfig": "1 clientIP ClientIPConfig",
    "SleepAction": "1 seconds int64",
    "StorageOSVolumeSource": (
        "1 volumeName string; 2 volumeNamespace string; 3 fsType string; 4 readOnly bool; "
        "5 secretRef LocalObjectReference"
    ),
    "Subject": "1 kind string; 2 apiGroup string; 3 name string; 4 namespace string",
    "SubjectAccessReviewStatus": "1 allowed bool; 4 denied bool; 2 reason string; 3 evaluationError string",
    "SubjectRulesReviewStatus": (
        "1 resourceRules ResourceRule r; 2 nonResourceRules NonResourceRule r; 3 incomplete bool; "
        "4 evaluationError string"
    ),
    "Sysctl": "1 name string; 2 value string",
    "TCPSocketAction": "1 port intstr; 2 host string",
    "Toleration": "1 key string; 2 operator string; 3 value string; 4 effect string; 5 tolerationSeconds int64",
    "TopologySpreadConstraint": (
        "1 maxSkew int32; 2 topologyKey string; 3 whenUnsatisfiable string; 4 labelSelector LabelSelector; "
        "5 minDomains int32; 6 nodeAffinityPolicy string; 7 nodeTaintsPolicy string; "
        "8 matchLabelKeys string r"
    ),
    "TypedLocalObjectReference": "1 apiGroup string; 2 kind string; 3 name string",
    "TypedObjectReference": "1 apiGroup string; 2 kind string; 3 name string; 4 namespace string",
    "Volume": "1 name string; 2 volumeSource VolumeSource",
    "VolumeDevice": "1 name string; 2 devicePath string",
    "VolumeHealthCondition": "1 status string; 2 reason string; 3 message string",
    "VolumeMount": (
        "1 name string; 2 readOnly bool; 7 recursiveReadOnly string; 3 mountPath string; 4 subPath string; "
        "5 mountPropagation string; 6 subPathExpr string; 8 bindMountOptions string r"
    ),
    "VolumeMountStatus": (
        "1 name string; 2 mountPath string; 3 readOnly bool; 4 recursiveReadOnly string; 5 volumeStatus VolumeStatus"
    ),
    "VolumeProjection": (
        "1 secret SecretProjection; 2 downwardAPI DownwardAPIProjection; 3 configMap ConfigMapProjection; "
        "4 serviceAccountToken ServiceAccountTokenProjection; "
        "5 clusterTrustBundle ClusterTrustBundleProjection; 6 podCertificate PodCertificateProjection"
    ),
    "VolumeResourceRequirements": "1 limits quantity m; 2 requests quantity m",
    "VolumeSource": (
        "1 hostPath HostPathVolumeSource; 2 emptyDir EmptyDirVolumeSource; "
        "3 gcePersistentDisk GCEPersistentDiskVolumeSource; "
        "4 awsElasticBlockStore AWSElasticBlockStoreVolumeSource; 5 gitRepo GitRepoVolumeSource; "
        "6 secret SecretVolumeSource; 7 nfs NFSVolumeSource; 8 iscsi ISCSIVolumeSource; "
        "9 glusterfs GlusterfsVolumeSource; 10 persistentVolumeClaim PersistentVolumeClaimVolumeSource; "
        "11 rbd RBDVolumeSource; 12 flexVolume FlexVolumeSource; 13 cinder CinderVolumeSource; "
        "14 cephfs CephFSVolumeSource; 15 flocker FlockerVolumeSource; 16 downwardAPI DownwardAPIVolumeSource; "
        "17 fc FCVolumeSource; 18 azureFile AzureFileVolumeSource; 19 configMap ConfigMapVolumeSource; "
        "20 vsphereVolume VsphereVirtualDiskVolumeSource; 21 quobyte QuobyteVolumeSource; "
        "22 azureDisk AzureDiskVolumeSource; 23 photonPersistentDisk PhotonPersistentDiskVolumeSource; "
        "26 projected ProjectedVolumeSource; 24 portworxVolume PortworxVolumeSource; "
        "25 scaleIO ScaleIOVolumeSource; 27 storageos StorageOSVolumeSource; 28 csi CSIVolumeSource; "
        "29 ephemeral EphemeralVolumeSource; 30 image ImageVolumeSource"
    ),
    "VolumeStatus": "1 image ImageVolumeStatus",
    "VsphereVirtualDiskVolumeSource": (
        "1 volumePath string; 2 fsType string; 3 storagePolicyName string; 4 storagePolicyID string"
    ),
    "WeightedPodAffinityTerm": "1 weight int32; 2 podAffinityTerm PodAffinityTerm",
    "WindowsSecurityContextOptions": (
        "1 gmsaCredentialSpecName string; 2 gmsaCredentialSpec string; 3 runAsUserName string; 4 hostProcess bool"
    ),
}
