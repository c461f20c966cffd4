"""Request and response bodies copied from Personalizer's published REST specifications.

Source: github.com/Azure/azure-rest-api-specs, specification/cognitiveservices/data-plane/Personalizer/
  stable/v1.0/examples/                 (commit 20ae42d6, Evaluations_Create at 15f38e5b)
  preview/v1.1-preview.3/examples/      (Rank, Evaluations_* at their commits in the index: 04c2cb7b,
                                         abb6fa76, df74858b, 4c0959c2, b2f74197, 176b47c6, f08dedbf)
  preview/2022-09-01-preview/examples/  (f28056e1, cfc781db, b2f74197, 0cc93a37, 6fa9dd25, 3b06a589)
Each constant names the file it comes from. Only the bodies are copied; placeholders such as
"{Endpoint}" are not used.
"""

_ACTIONS = [
    {"id": "NewsArticle", "features": [{"type": "News"}]},
    {"id": "SportsArticle", "features": [{"type": "Sports"}]},
    {"id": "EntertainmentArticle", "features": [{"type": "Entertainment"}]},
]
_CONTEXT = [
    {"user": {"profileType": "AnonymousUser", "latLong": "47.6,-122.1"}},
    {"environment": {"dayOfMonth": "28", "monthOfYear": "8", "weather": "Sunny"}},
    {"device": {"mobile": True, "windows": True}},
    {"recentActivity": {"itemsInCart": 3}},
]

# stable/v1.0/examples/Rank.json: parameters.rankRequest and responses.201.body
V1_0_RANK = {
    "contextFeatures": [{"timeOfDay": "Morning"}],
    "actions": _ACTIONS,
    "excludedActions": ["SportsArticle"],
    "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
    "deferActivation": False,
}
V1_0_RANK_RESPONSE = {
    "ranking": [{"id": "EntertainmentArticle", "probability": 0.8}, {"id": "SportsArticle", "probability": 0},
                {"id": "NewsArticle", "probability": 0.2}],
    "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
    "rewardActionId": "EntertainmentArticle",
}

# stable/v1.0/examples/Events_Reward.json and Events_Activate.json: eventId "id" (never ranked) -> 204
V1_0_REWARD_EVENT_ID = "id"
V1_0_REWARD = {"value": 1}

# stable/v1.0/examples/ServiceConfiguration_Update.json: parameters.config, echoed as responses.200.body
V1_0_SERVICE_CONFIGURATION = {
    "rewardWaitTime": "00:10:00",
    "defaultReward": 0,
    "rewardAggregation": "earliest",
    "explorationPercentage": 0.2,
    "modelExportFrequency": "00:05:00",
    "logMirrorEnabled": True,
    "logMirrorSasUri": "https://testblob.blob.core.windows.net/container?se=2020-08-13T00%3A00Z&sp=rwl&spr=https"
                       "&sv=2018-11-09&sr=c&sig=signature",
    "logRetentionDays": 7,
}

# stable/v1.0/examples/Policy_Update.json: parameters.policy, echoed as responses.200.body
V1_0_POLICY = {"name": "myPersonalizer",
               "arguments": "--cb_explore_adf --epsilon 0.2 --dsjson --cb_type ips -l 0.5 --l1 1E-07 --power_t 0.5"}

# stable/v1.0/examples/Evaluations_Create.json: parameters.evaluation (201 with a Location header)
V1_0_EVALUATION = {
    "enableOfflineExperimentation": True,
    "name": "myFirstEvaluation",
    "startTime": "2018-12-19T00:00:00Z",
    "endTime": "2019-01-19T00:00:00Z",
    "policies": [{"name": "Custom Learning settings 1",
                  "arguments": "--cb_explore_adf --epsilon 0.2 --dsjson --cb_type ips -l 0.5 --l1 1E-07 "
                               "--power_t 0.5"}],
}
# stable/v1.0/examples/Evaluations_Get.json: responses.200.body.policyResults[0].totalSummary (its keys)
V1_0_SUMMARY_KEYS = {"timeStamp", "ipsEstimatorNumerator", "ipsEstimatorDenominator", "snipsEstimatorDenominator",
                     "aggregateTimeWindow", "nonZeroProbability", "confidenceInterval", "sumOfSquares"}
V1_0_EVALUATION_STATUSES = {"completed", "pending", "failed", "notSubmitted"}  # Personalizer.json, Evaluation.status

# preview/v1.1-preview.3/examples/Rank.json: parameters.rankRequest
V1_1_RANK = {
    "contextFeatures": _CONTEXT,
    "actions": _ACTIONS,
    "excludedActions": ["SportsArticle"],
    "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
    "deferActivation": False,
}

# preview/v1.1-preview.3/examples/MultiSlot_Rank.json: parameters.body
V1_1_MULTISLOT_RANK = {
    "contextFeatures": _CONTEXT,
    "actions": _ACTIONS,
    "slots": [
        {"id": "Main Article", "features": [{"size": "Large", "position": "Top Middle"}],
         "excludedActions": ["SportsArticle"], "baselineAction": "EntertainmentArticle"},
        {"id": "Side Bar", "features": [{"size": "Small"}], "baselineAction": "NewsArticle"},
    ],
    "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
    "deferActivation": False,
}

# preview/v1.1-preview.3/examples/MultiSlotEvents_Reward.json: eventId "id", parameters.body
V1_1_MULTISLOT_REWARD = {"reward": [{"slotId": "Heroposition", "value": 0.5}, {"slotId": "SideBar", "value": 0.6}]}

# preview/v1.1-preview.3/examples/ServiceConfiguration_Update.json: parameters.body, echoed as responses.200.body
V1_1_SERVICE_CONFIGURATION = {
    "rewardWaitTime": "PT10M",
    "defaultReward": 0.0,
    "rewardAggregation": "earliest",
    "explorationPercentage": 0.2,
    "modelExportFrequency": "PT5M",
    "logMirrorEnabled": True,
    "logMirrorSasUri": "https://testblob.blob.core.windows.net/container?se=2020-08-13T00%3A00Z&sp=rwl&spr=https"
                       "&sv=2018-11-09&sr=c&sig=signature",
    "logRetentionDays": 7,
    "lastConfigurationEditDate": "2019-01-19T00:00:00Z",
    "learningMode": "Online",
    "isAutoOptimizationEnabled": True,
    "autoOptimizationFrequency": "P7D",
    "autoOptimizationStartDate": "2019-01-19T00:00:00Z",
}

# preview/v1.1-preview.3/examples/Evaluations_Get.json: responses.200.body (the keys of the document and of
# policyResults[0].summary[0]; values are that evaluation's, not ours)
V1_1_EVALUATION_KEYS = {"id", "name", "startTime", "endTime", "status", "policyResults", "featureImportance",
                        "evaluationType", "optimalPolicy", "creationTime"}
V1_1_SUMMARY_KEYS = V1_0_SUMMARY_KEYS | {"averageReward"}

# preview/v1.1-preview.3/examples/Evaluation_Apply.json: parameters.body (evaluationId is the example's own)
V1_1_APPLY = {"evaluationId": "b58c6d92-b727-48c1-9487-4be2782c9e0a", "policyName": "online"}

# preview/2022-09-01-preview/examples/Rank.json: parameters.rankRequest (same body as v1.1-preview.3)
V2022_RANK = V1_1_RANK

# preview/2022-09-01-preview/examples/Evaluations_Create.json: parameters.evaluation (PUT, responses.200)
V2022_EVALUATION = {
    "enablePolicyOptimization": True,
    "name": "myFirstEvaluation",
    "startTime": "2018-12-19T00:00:00Z",
    "endTime": "2019-01-19T00:00:00Z",
    "policies": [{"name": "Custom learning settings 1",
                  "arguments": "--cb_explore_adf --epsilon 0.2 --dsjson --cb_type ips -l 0.5 --l1 1E-07 "
                               "--power_t 0.5"}],
}
# preview/2022-09-01-preview/examples/Evaluations_Get.json: responses.200.body keys and content.value[0] keys
V2022_EVALUATION_KEYS = {"id", "name", "startTime", "endTime", "creationTime", "status", "evaluationType", "content"}
V2022_RESULT_KEYS = {"name", "arguments", "policySource", "summary", "timeseries"}

# preview/2022-09-01-preview/examples/FeatureImportances_Create.json: parameters.featureImportance
V2022_FEATURE_IMPORTANCE = {"name": "myFeatureImportance", "startTime": "2019-01-12T00:00:00Z",
                            "endTime": "2019-01-19T00:00:00Z"}
# preview/2022-09-01-preview/examples/FeatureImportances_Get.json: responses.200.body keys, featureScores[0] keys
V2022_FEATURE_IMPORTANCE_KEYS = {"id", "name", "startTime", "endTime", "creationTime", "status", "featureScores"}
V2022_FEATURE_SCORE_KEYS = {"namespace", "featureName", "score"}
# preview/2022-09-01-preview/examples/FeatureImportances_List.json: responses.200.body keys, value[0] keys
V2022_FEATURE_IMPORTANCE_LIST_KEYS = {"value", "nextLink"}
V2022_FEATURE_IMPORTANCE_DETAILS_KEYS = {"id", "name", "startTime", "endTime", "creationTime", "status"}
